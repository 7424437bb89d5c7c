# A small valid cluster the bad-input fixtures start from: each fixture adds
# one mistake on top of it.
{
  cluster = {
    name = "fixture";
    networks.management.cidr = "10.9.0.0/24";
    nodes = {
      cp1 = {
        roles = ["control-plane"];
        addresses = ["10.9.0.1"];
        identity.macAddresses = ["52:54:00:09:00:01"];
      };
      w1 = {
        roles = ["worker"];
        addresses = ["10.9.0.11"];
        identity.macAddresses = ["52:54:00:09:00:11"];
      };
      w2 = {
        roles = ["worker"];
        addresses = ["10.9.0.12"];
        identity.dmiSerial = "SERIAL-W2";
      };
      e1 = {
        roles = ["edge"];
        addresses = ["10.9.0.21"];
      };
    };
    services.api = {
      command = ["api"];
      replicas = 2;
      ports.http.port = 8000;
    };
    dns.zones."fixture.test".records = [
      {
        name = "api";
        service = "api";
      }
    ];
    lb.listeners.api = {
      port = 443;
      backends.service = "api";
    };
  };
}
