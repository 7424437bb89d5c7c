# expect: MAC address 52:54:00:09:00:11 identifies more than one machine (cluster.nodes.e1.identity.macAddresses, cluster.nodes.w1.identity.macAddresses)
{cluster.nodes.e1.identity.macAddresses = ["52:54:00:09:00:11"];}
