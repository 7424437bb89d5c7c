# expect: cluster.dns.zones."8.b.d.0.1.0.0.2.ip6.arpa".ptrPatterns.0.network = "2001:db9::/64" is not inside the addresses of "8.b.d.0.1.0.0.2.ip6.arpa" (2001:0db8::/32); use a network inside it, or declare the pattern in the zone of its addresses.
{
  cluster.dns.zones."8.b.d.0.1.0.0.2.ip6.arpa".ptrPatterns = [
    {
      network = "2001:db9::/64";
      pattern = "host-{ip}.fixture.test.";
    }
  ];
}
