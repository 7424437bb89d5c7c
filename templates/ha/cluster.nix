# Three control-plane nodes (the store's quorum), two workers and an edge
# node: a replicated web service behind a load balancer, with a DNS name.
let
  node = address: mac: roles: {
    inherit roles;
    addresses = [address];
    identity.macAddresses = [mac];
    install.disk = "/dev/disk/by-id/virtio-root";
  };
in {
  cluster = {
    name = "ha";

    networks = {
      management = {
        cidr = "10.1.0.0/24";
        gateway = "10.1.0.1";
        resolvers = ["10.1.0.1"];
      };
      vlans.storage = {
        id = 20;
        cidr = "10.1.20.0/24";
      };
    };

    nodes = {
      cp1 = node "10.1.0.11" "52:54:00:01:00:11" ["control-plane"];
      cp2 = node "10.1.0.12" "52:54:00:01:00:12" ["control-plane"];
      cp3 = node "10.1.0.13" "52:54:00:01:00:13" ["control-plane"];
      worker1 =
        node "10.1.0.21" "52:54:00:01:00:21" ["worker"]
        // {
          labels.zone = "a";
          capacity = {
            cpuMillis = 8000;
            memoryMiB = 16384;
          };
          install = {
            disk = "/dev/disk/by-id/nvme-worker1";
            layout = "lvm";
          };
        };
      worker2 =
        node "10.1.0.22" "52:54:00:01:00:22" ["worker"]
        // {
          labels.zone = "b";
          capacity = {
            cpuMillis = 8000;
            memoryMiB = 16384;
          };
          install = {
            disk = "/dev/disk/by-id/nvme-worker2";
            layout = "lvm";
          };
        };
      edge1 =
        node "10.1.0.31" "52:54:00:01:00:31" ["edge"]
        // {
          identity = {
            macAddresses = ["52:54:00:01:00:31"];
            dmiSerial = "EDGE-0001";
          };
        };
    };

    services.web = {
      command = ["/bin/sh" "-c" "exec python3 -m http.server --bind \"$UC_ADDRESS\" \"$UC_PORT_HTTP\""];
      replicas = 2;
      placement.roles = ["worker"];
      resources = {
        cpuMillis = 500;
        memoryMiB = 256;
      };
      ports.http.port = 8080;
      healthCheck = {
        type = "http";
        path = "/";
      };
      environment.GREETING = "hello from ha";
      secretFiles.SESSION_KEY = "/run/secrets/web-session-key";
    };

    dns.zones = {
      "ha.test" = {
        nameservers = ["ns1.ha.test."];
        records = [
          {
            name = "ns1";
            values = ["10.1.0.31"];
          }
          {
            name = "www";
            values = ["10.1.0.31"];
          }
          {
            name = "web";
            service = "web";
          }
        ];
      };
      "0.1.10.in-addr.arpa".ptrPatterns = [
        {
          network = "10.1.0.0/24";
          pattern = "host-{a}-{b}-{c}-{d}.ha.test.";
        }
      ];
    };

    lb.listeners.www = {
      protocol = "http";
      port = 80;
      backends.service = "web";
      healthCheck = {
        type = "http";
        path = "/";
      };
    };

    rollout = {
      canary = ["worker1"];
      maxUnavailable = 1;
      healthGateTimeoutSeconds = 120;
      healthChecks = [
        {
          name = "no-failed-units";
          type = "exec";
          command = ["systemctl" "is-system-running"];
        }
      ];
    };
  };
}
