# expect: cluster.name = "my cluster" is not a valid DNS label
{lib, ...}: {cluster.name = lib.mkForce "my cluster";}
