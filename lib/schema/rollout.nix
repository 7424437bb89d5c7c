# cluster.rollout: how uc-deployer moves nodes to a new system.
{lib, ...}: let
  inherit (lib) mkOption types;
in {
  options.cluster.rollout = {
    canary = mkOption {
      type = types.listOf types.str;
      default = [];
      example = ["worker1"];
      description = "Nodes switched first, alone, as the first wave.";
    };
    maxUnavailable = mkOption {
      type = types.ints.positive;
      default = 1;
      description = ''
        Nodes switched at once in each later wave. Store members are always
        switched one at a time, last, so the store keeps its quorum.
      '';
    };
    healthGateTimeoutSeconds = mkOption {
      type = types.ints.positive;
      default = 300;
      description = "How long a node may take to report the new system healthy before its wave fails.";
    };
    drainTimeoutSeconds = mkOption {
      type = types.ints.unsigned;
      default = 30;
      description = ''
        Before a node is switched it is taken out of traffic: every uc-lb
        stops sending it new connections and uc-dns leaves its addresses out
        of `service` records. The deployer waits for the node's open
        connections to finish, at most this long, then switches it; the node
        is put back once it reports the new system healthy. 0 switches at
        once after the drain is written.
      '';
    };
    autoRevert = mkOption {
      type = types.bool;
      default = true;
      description = "Switch the nodes of a failed wave back to their previous system.";
    };
    healthChecks = mkOption {
      type = types.listOf (types.submodule {
        options = {
          name = mkOption {
            type = types.str;
            example = "sshd";
            description = "Name shown in reports.";
          };
          type = mkOption {
            type = types.enum ["exec" "tcp" "http"];
            description = "A command that must exit 0, a TCP connect, or an HTTP GET that must answer 2xx.";
          };
          command = mkOption {
            type = types.listOf types.str;
            default = [];
            example = ["systemctl" "is-active" "sshd.service"];
            description = "argv of an `exec` check.";
          };
          address = mkOption {
            type = types.nullOr types.str;
            default = null;
            example = "127.0.0.1:22";
            description = "`host:port` of a `tcp` check.";
          };
          url = mkOption {
            type = types.nullOr types.str;
            default = null;
            example = "http://127.0.0.1:7483/health";
            description = "URL (plain http) of an `http` check.";
          };
          timeoutSeconds = mkOption {
            type = types.ints.positive;
            default = 5;
            description = "Seconds one attempt may take.";
          };
        };
      });
      default = [];
      description = ''
        Checks nix-agent runs on every node after switching; the node reports
        the new system healthy once all pass, and rolls back if they do not
        within `healthGateTimeoutSeconds`.
      '';
    };
    switchAction = mkOption {
      type = types.enum ["switch" "boot"];
      default = "switch";
      description = "`switch-to-configuration` action: activate now, or at next boot.";
    };
  };
}
