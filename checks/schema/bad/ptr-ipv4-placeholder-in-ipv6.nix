# expect: cluster.dns.zones."8.b.d.0.1.0.0.2.ip6.arpa".ptrPatterns.0.pattern = "host-{c}-{d}.fixture.test." uses {c}, {d}, placeholders of IPv4 addresses, but 2001:db8::/64 is IPv6; IPv6 patterns use {ip}, {hex}.
{
  cluster.dns.zones."8.b.d.0.1.0.0.2.ip6.arpa".ptrPatterns = [
    {
      network = "2001:db8::/64";
      pattern = "host-{c}-{d}.fixture.test.";
    }
  ];
}
