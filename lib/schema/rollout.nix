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
    autoRevert = mkOption {
      type = types.bool;
      default = true;
      description = "Switch the nodes of a failed wave back to their previous system.";
    };
    switchAction = mkOption {
      type = types.enum ["switch" "boot"];
      default = "switch";
      description = "`switch-to-configuration` action: activate now, or at next boot.";
    };
  };
}
