# Three bare-metal machines, each running every role: the store's quorum,
# the deployer and scheduler, service instances, DNS and the load balancer.
# Each is recognised at install time by its MAC address and DMI serial and
# installed by the installer ISO (see README.md).
let
  machine = address: mac: serial: {
    roles = ["control-plane" "worker" "edge"];
    addresses = [address];
    identity = {
      macAddresses = [mac];
      dmiSerial = serial;
    };
    capacity = {
      cpuMillis = 16000;
      memoryMiB = 65536;
    };
  };
in {
  cluster = {
    name = "metal";

    networks.management = {
      cidr = "192.168.10.0/24";
      gateway = "192.168.10.1";
      resolvers = ["192.168.10.1"];
    };

    nodes = {
      # Named layouts: GPT with an ESP and LVM (root, /var/lib).
      metal1 =
        machine "192.168.10.11" "3c:ec:ef:00:00:11" "S211-0001"
        // {
          install = {
            disk = "/dev/disk/by-id/nvme-SAMSUNG_MZQL2960HCJR-00A07_S64FNE0R100001";
            layout = "lvm";
          };
        };
      metal2 =
        machine "192.168.10.12" "3c:ec:ef:00:00:12" "S211-0002"
        // {
          install = {
            disk = "/dev/disk/by-id/nvme-SAMSUNG_MZQL2960HCJR-00A07_S64FNE0R100002";
            layout = "lvm";
          };
        };
      # A disko tree of its own: the system on one disk, /var/lib (store
      # data, instances) on a second one.
      metal3 =
        machine "192.168.10.13" "3c:ec:ef:00:00:13" "S211-0003"
        // {
          install.disko = {
            disk.system = {
              type = "disk";
              device = "/dev/disk/by-id/ata-SAMSUNG_MZ7L3480HCHQ_S6RKNE0R300001";
              content = {
                type = "gpt";
                partitions = {
                  ESP = {
                    type = "EF00";
                    size = "512M";
                    content = {
                      type = "filesystem";
                      format = "vfat";
                      mountpoint = "/boot";
                      mountOptions = ["umask=0077"];
                    };
                  };
                  root = {
                    size = "100%";
                    content = {
                      type = "filesystem";
                      format = "ext4";
                      mountpoint = "/";
                    };
                  };
                };
              };
            };
            disk.data = {
              type = "disk";
              device = "/dev/disk/by-id/nvme-SAMSUNG_MZQL2960HCJR-00A07_S64FNE0R300002";
              content = {
                type = "gpt";
                partitions.varlib = {
                  size = "100%";
                  content = {
                    type = "filesystem";
                    format = "ext4";
                    mountpoint = "/var/lib";
                  };
                };
              };
            };
          };
        };
    };

    services.hello = {
      command = ["/bin/sh" "-c" "exec python3 -m http.server --bind \"$UC_ADDRESS\" \"$UC_PORT_HTTP\""];
      replicas = 3;
      ports.http.port = 8080;
      healthCheck = {
        type = "http";
        path = "/";
      };
      publish.dns.enable = true;
    };

    dns.zones."metal.example" = {
      nameservers = ["ns1.metal.example."];
      records = [
        {
          name = "ns1";
          values = ["192.168.10.11"];
        }
      ];
    };

    lb.listeners.hello = {
      protocol = "http";
      port = 80;
      backends.service = "hello";
    };

    deployer.cache.publicKeys = [
      # Replace with the public key of your deployer's signing key (README.md).
      "metal-cache-1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    ];
  };
}
