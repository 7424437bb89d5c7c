# expect: cluster.dns.zones."fixture.test".records.1.service = "db" is not a service in cluster.services (known: ["api"]); fix the name or declare the service.
{
  cluster.dns.zones."fixture.test".records = [
    {
      name = "db";
      service = "db";
    }
  ];
}
