# expect: cluster.iam.nodes names "cp9", which is not in cluster.nodes (known: ["cp1","e1","w1","w2"]).
{cluster.iam.nodes = ["cp9"];}
