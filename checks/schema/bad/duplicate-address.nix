# expect: cluster.nodes.<name>.addresses: 10.9.0.11 is claimed 2 times (by cluster.nodes.w1, cluster.nodes.w2); give each node its own addresses.
{cluster.nodes.w2.addresses = ["10.9.0.11"];}
