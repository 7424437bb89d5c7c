# expect: cluster.services.api.publish.dns.zone = "other.test" is not a zone in cluster.dns.zones (known: ["fixture.test"]).
{
  cluster.services.api.publish.dns = {
    enable = true;
    zone = "other.test";
  };
}
