# expect: cluster.dns.zones."fixture.test".ptrPatterns.0: PTR patterns belong in a reverse zone named after the addresses it covers (under in-addr.arpa for IPv4, under ip6.arpa for IPv6), not in "fixture.test".
{
  cluster.dns.zones."fixture.test".ptrPatterns = [
    {
      network = "10.1.0.0/24";
      pattern = "host-{d}.fixture.test.";
    }
  ];
}
