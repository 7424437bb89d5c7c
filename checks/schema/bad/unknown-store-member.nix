# expect: cluster.store.members: "cp9" is not a node in cluster.nodes; fix the name or declare the node.
{cluster.store.members = ["cp9"];}
