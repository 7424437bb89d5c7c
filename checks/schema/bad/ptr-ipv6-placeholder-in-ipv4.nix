# expect: cluster.dns.zones."0.1.10.in-addr.arpa".ptrPatterns.0.pattern = "host-{ip}.fixture.test." uses {ip}, placeholders of IPv6 addresses, but 10.1.0.0/24 is IPv4; IPv4 patterns use {a}, {b}, {c}, {d}.
{
  cluster.dns.zones."0.1.10.in-addr.arpa".ptrPatterns = [
    {
      network = "10.1.0.0/24";
      pattern = "host-{ip}.fixture.test.";
    }
  ];
}
