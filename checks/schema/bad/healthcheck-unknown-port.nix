# expect: cluster.services.api.healthCheck.port = "metrics" is not in cluster.services.api.ports (["http"]); name one of those ports.
{
  cluster.services.api.healthCheck = {
    type = "http";
    port = "metrics";
  };
}
