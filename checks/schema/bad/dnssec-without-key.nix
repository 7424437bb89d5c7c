# expect: cluster.dns.zones."fixture.test".dnssec.enable is set but cluster.dns.zones."fixture.test".dnssec.keyFile is not
{
  cluster.dns.zones."fixture.test".dnssec.enable = true;
}
