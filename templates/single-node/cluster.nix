# One machine with every role: the smallest complete UltraCloud.
{
  cluster = {
    name = "single";

    networks.management = {
      cidr = "10.0.0.0/24";
      gateway = "10.0.0.1";
      resolvers = ["10.0.0.1"];
    };

    nodes.node01 = {
      roles = ["control-plane" "worker" "edge"];
      addresses = ["10.0.0.10"];
      identity.macAddresses = ["52:54:00:00:00:10"];
      install.disk = "/dev/disk/by-id/virtio-node01-root";
      capacity = {
        cpuMillis = 4000;
        memoryMiB = 8192;
      };
    };

    services.hello = {
      command = ["/bin/sh" "-c" "exec python3 -m http.server --bind \"$UC_ADDRESS\" \"$UC_PORT_HTTP\""];
      placement.roles = ["worker"];
      ports.http.port = 8080;
      healthCheck.type = "http";
      publish.dns.enable = true;
    };

    dns.zones."single.test".records = [
      {
        name = "@";
        type = "A";
        values = ["10.0.0.10"];
      }
    ];

    lb.listeners.hello = {
      protocol = "http";
      port = 80;
      backends.service = "hello";
    };
  };
}
