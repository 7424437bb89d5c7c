# expect: cluster.nodes.w1.addresses."[definition 1-entry 1]"' is not of type `IPv4 or IPv6 address'
{lib, ...}: {cluster.nodes.w1.addresses = lib.mkForce ["10.9.0.300"];}
