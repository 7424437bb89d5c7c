# expect: DMI serial "SERIAL-W2" identifies more than one machine (cluster.nodes.cp1.identity.dmiSerial, cluster.nodes.w2.identity.dmiSerial)
{cluster.nodes.cp1.identity.dmiSerial = "SERIAL-W2";}
