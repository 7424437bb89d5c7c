# expect: cluster.dns.zones."fixture.test".secondaries.1.address = "10.9.0.50:53" is not an IPv4 or IPv6 address
# expect: (the port goes in cluster.dns.zones."fixture.test".secondaries.1.port)
{
  cluster.dns.zones."fixture.test".secondaries = [
    {address = "2001:db8::53";}
    {address = "10.9.0.50:53";}
  ];
}
