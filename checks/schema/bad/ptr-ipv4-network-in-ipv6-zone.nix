# expect: cluster.dns.zones."8.b.d.0.1.0.0.2.ip6.arpa".ptrPatterns.0.network = "10.1.0.0/24" is an IPv4 network, but "8.b.d.0.1.0.0.2.ip6.arpa" is an IPv6 reverse zone; declare the pattern in a zone under in-addr.arpa.
{
  cluster.dns.zones."8.b.d.0.1.0.0.2.ip6.arpa".ptrPatterns = [
    {
      network = "10.1.0.0/24";
      pattern = "host-{d}.fixture.test.";
    }
  ];
}
