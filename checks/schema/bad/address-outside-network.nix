# expect: cluster.nodes.e1.addresses: the first address 192.168.1.5 is outside cluster.networks.management.cidr = 10.9.0.0/24
{lib, ...}: {cluster.nodes.e1.addresses = lib.mkForce ["192.168.1.5"];}
