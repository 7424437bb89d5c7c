# expect: cluster.services.api.replicas = 3, but only 2 node(s) are eligible (["w1","w2"]) and placement.antiAffinity allows one instance per node. Rejected nodes: cp1 has none of the roles worker; e1 has none of the roles worker.
{lib, ...}: {cluster.services.api.replicas = lib.mkForce 3;}
