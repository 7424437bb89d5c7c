# expect: port 2379/tcp is used twice on node cp1: by cluster.store.clientPort and cluster.deployer.port
{cluster.deployer.port = 2379;}
