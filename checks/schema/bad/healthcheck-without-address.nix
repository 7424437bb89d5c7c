# expect: cluster.rollout.healthChecks.0 ("ssh", type tcp) needs an address host:port.
{
  cluster.rollout.healthChecks = [
    {
      name = "ssh";
      type = "tcp";
    }
  ];
}
