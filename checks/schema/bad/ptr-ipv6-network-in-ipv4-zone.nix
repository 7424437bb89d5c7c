# expect: cluster.dns.zones."0.1.10.in-addr.arpa".ptrPatterns.0.network = "2001:db8::/64" is an IPv6 network, but "0.1.10.in-addr.arpa" is an IPv4 reverse zone; declare the pattern in a zone under ip6.arpa.
{
  cluster.dns.zones."0.1.10.in-addr.arpa".ptrPatterns = [
    {
      network = "2001:db8::/64";
      pattern = "host-{ip}.fixture.test.";
    }
  ];
}
