# expect: cluster.rollout.canary: "w3" is not a node in cluster.nodes (known: ["cp1","e1","w1","w2"]); fix the name or declare the node.
{cluster.rollout.canary = ["w3"];}
