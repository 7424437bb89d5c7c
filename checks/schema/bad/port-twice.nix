# expect: port 2379/tcp is used twice on node w1: by cluster.nodeAgent.port and cluster.services.api.ports.http; give one of them another port
{lib, ...}: {
  cluster.nodeAgent.port = 2379;
  cluster.services.api.ports.http.port = lib.mkForce 2379;
}
