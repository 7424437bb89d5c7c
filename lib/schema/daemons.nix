# Cluster-wide settings of the daemons that have no section of their own:
# deployer, scheduler, nix-agent and node-agent.
{
  lib,
  ucTypes,
  ...
}: let
  inherit (lib) mkOption types;
  httpPort = default: daemon:
    mkOption {
      type = types.port;
      inherit default;
      description = "Port of ${daemon}'s HTTP endpoint (/metrics, /health and its API).";
    };
in {
  options.cluster = {
    deployer = {
      port = httpPort 7480 "uc-deployer";
      dataDir = mkOption {
        type = types.str;
        default = "/var/lib/ultracloud/deployer";
        description = "Deployer state: manifest history, pending machines.";
      };
      cache = {
        publicKeys = mkOption {
          type = types.listOf ucTypes.cachePublicKey;
          default = [];
          example = ["uc-cache-1:qFTqmuPCQpY3w3Cj7t7XqhP/5gxgErVWbssM9DnsRVI="];
          description = "Public keys nix-agent trusts for the deployer's binary cache.";
        };
        signingKeyFile = mkOption {
          type = ucTypes.secretPath;
          default = "/var/lib/ultracloud/deployer/cache-signing.key";
          description = "Secret key the cache signs narinfo with (a path on the node; never a Nix path).";
        };
      };
      enrollmentTokenFile = mkOption {
        type = ucTypes.secretPath;
        default = "/var/lib/ultracloud/deployer/enrollment-token";
        description = "File holding the token installers present at phone-home.";
      };
    };

    scheduler = {
      port = httpPort 7481 "uc-scheduler";
      nodeLossGraceSeconds = mkOption {
        type = types.ints.positive;
        default = 60;
        description = "How long a node's heartbeat may be missing before its instances are placed elsewhere.";
      };
    };

    nixAgent = {
      port = httpPort 7482 "uc-nix-agent";
      profile = mkOption {
        type = types.str;
        default = "/nix/var/nix/profiles/system";
        description = "System profile nix-agent sets and rolls back.";
      };
      stateDir = mkOption {
        type = types.str;
        default = "/var/lib/ultracloud/nix-agent";
        description = "Where nix-agent notes a switch in progress, to recover from a crash mid-switch.";
      };
    };

    nodeAgent = {
      port = httpPort 7483 "uc-node-agent";
      stateDir = mkOption {
        type = types.str;
        default = "/var/lib/ultracloud/node-agent";
        description = "Instance state and logs.";
      };
      heartbeatTtlSeconds = mkOption {
        type = types.ints.positive;
        default = 10;
        description = "TTL of the node's heartbeat lease in the store.";
      };
    };
  };
}
