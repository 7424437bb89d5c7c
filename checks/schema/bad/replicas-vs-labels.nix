# expect: cluster.services.api.replicas = 2, but only 1 node(s) are eligible (["w1"]) and placement.antiAffinity allows one instance per node. Rejected nodes: cp1 has none of the roles worker; e1 has none of the roles worker; w2 lacks label(s) disk=ssd.
{
  cluster.nodes.w1.labels.disk = "ssd";
  cluster.services.api.placement.labels.disk = "ssd";
}
