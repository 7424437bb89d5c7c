# cluster.services.<name>: long-running workloads, placed by uc-scheduler and
# run by uc-node-agent (the idea of NixOS' portable services, cluster-wide).
{
  lib,
  ucTypes,
  ...
}: let
  inherit (lib) mkOption types;

  portModule = {
    options = {
      port = mkOption {
        type = types.port;
        description = "Port number the instance listens on, on its node's address.";
      };
      protocol = mkOption {
        type = types.enum ["tcp" "udp"];
        default = "tcp";
        description = "Transport protocol.";
      };
    };
  };

  healthCheckModule = {
    options = {
      type = mkOption {
        type = types.enum ["http" "tcp" "exec"];
        description = "How health is probed: an HTTP GET expecting 2xx, a TCP connect, or a command expecting exit 0.";
      };
      port = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "Name of the port (in `ports`) probed by `http` and `tcp` checks; default: the service's only port.";
      };
      path = mkOption {
        type = types.str;
        default = "/";
        description = "Request path of an `http` check.";
      };
      command = mkOption {
        type = types.listOf types.str;
        default = [];
        example = ["/bin/sh" "-c" "test -S /run/app.sock"];
        description = "argv of an `exec` check.";
      };
      intervalSeconds = mkOption {
        type = types.ints.positive;
        default = 10;
        description = "Seconds between probes.";
      };
      timeoutSeconds = mkOption {
        type = types.ints.positive;
        default = 5;
        description = "Seconds before a probe counts as failed.";
      };
      failureThreshold = mkOption {
        type = types.ints.positive;
        default = 3;
        description = "Consecutive failures before the instance is reported unhealthy.";
      };
    };
  };

  serviceModule = {name, ...}: {
    options = {
      name = mkOption {
        type = types.str;
        default = name;
        readOnly = true;
        description = "The service's name (its attribute name).";
      };

      package = mkOption {
        type = types.nullOr types.package;
        default = null;
        description = "Package providing the program; a relative `command[0]` is looked up in its `bin/`.";
      };

      storePath = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/nix/store/…-myapp-1.2";
        description = "A prebuilt store path used like `package`, for closures built outside this flake.";
      };

      command = mkOption {
        type = types.nonEmptyListOf types.str;
        example = ["myapp" "--listen" "0.0.0.0:8080"];
        description = ''
          argv of the instance (no shell). Instances get `UC_NODE`,
          `UC_ADDRESS` and `UC_PORT_<NAME>` in their environment.
        '';
      };

      replicas = mkOption {
        type = types.ints.unsigned;
        default = 1;
        description = "Number of instances to run.";
      };

      placement = {
        roles = mkOption {
          type = types.nonEmptyListOf (types.enum ["control-plane" "worker" "edge"]);
          default = ["worker"];
          description = "Instances go only to nodes having one of these roles.";
        };
        labels = mkOption {
          type = types.attrsOf types.str;
          default = {};
          example = {disk = "ssd";};
          description = "Instances go only to nodes carrying all these labels.";
        };
        antiAffinity = mkOption {
          type = types.bool;
          default = true;
          description = "At most one instance per node (needed when `ports` are fixed).";
        };
        maxUnavailable = mkOption {
          type = types.ints.positive;
          default = 1;
          description = "How many instances a drain or an update may take down at once.";
        };
      };

      resources = {
        cpuMillis = mkOption {
          type = types.ints.positive;
          default = 100;
          description = "CPU requested per instance, in thousandths of a core.";
        };
        memoryMiB = mkOption {
          type = types.ints.positive;
          default = 128;
          description = "Memory requested per instance, in MiB.";
        };
      };

      ports = mkOption {
        type = types.attrsOf (types.submodule portModule);
        default = {};
        example = {http.port = 8080;};
        description = "Ports each instance listens on, by name.";
      };

      healthCheck = mkOption {
        type = types.nullOr (types.submodule healthCheckModule);
        default = null;
        example = {
          type = "http";
          path = "/healthz";
        };
        description = "How uc-node-agent decides an instance is healthy; null: running means healthy.";
      };

      environment = mkOption {
        type = types.attrsOf types.str;
        default = {};
        description = "Environment variables of each instance. Never put secrets here: they land in the Nix store.";
      };

      secretFiles = mkOption {
        type = types.attrsOf ucTypes.secretPath;
        default = {};
        example = {DATABASE_PASSWORD = "/run/secrets/db-password";};
        description = ''
          Secrets by environment variable name: the value is the absolute path,
          as a string, of a file on the node. The instance gets
          `<NAME>_FILE` pointing at a private copy. A Nix path (`./secret`) is
          refused because it would be copied into the world-readable store.
        '';
      };

      publish.dns = {
        enable = mkOption {
          type = types.bool;
          default = false;
          description = "Publish A/AAAA records for the nodes running healthy instances.";
        };
        zone = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "example.com";
          description = "Zone (in `cluster.dns.zones`) to publish in; default: the only forward zone.";
        };
        name = mkOption {
          type = types.str;
          default = name;
          description = "Owner name relative to the zone.";
        };
      };
    };
  };
in {
  options.cluster.services = mkOption {
    type = types.attrsOf (types.submodule serviceModule);
    default = {};
    description = "Services to run on the cluster, by name.";
  };
}
