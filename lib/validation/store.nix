# The store needs members that exist; an even count buys no fault tolerance.
{
  lib,
  config,
  ...
}: let
  cfg = config.cluster;
  members = cfg.store.members;
  count = builtins.length members;
in {
  assertions =
    [
      {
        assertion = count > 0;
        message = "cluster.store.members is empty: the cluster needs at least one store member. Give a node the `control-plane` role, or list nodes in cluster.store.members (1, 3 or 5).";
      }
      {
        assertion = lib.unique members == members;
        message = "cluster.store.members lists a node more than once: ${builtins.toJSON members}; list each member once.";
      }
    ]
    ++ map (m: {
      assertion = cfg.nodes ? ${m};
      message = "cluster.store.members: \"${m}\" is not a node in cluster.nodes; fix the name or declare the node.";
    })
    members;

  warnings =
    lib.optional (count > 0 && lib.mod count 2 == 0)
    "cluster.store.members has ${toString count} members: an even count tolerates no more failures (${toString ((count - 1) / 2)}) than ${toString (count - 1)} members would, and needs a larger quorum; use an odd number (1, 3 or 5)."
    ++ map (m: "cluster.store.members: \"${m}\" lacks the `control-plane` role; store members usually are control-plane nodes.")
    (builtins.filter (m: cfg.nodes ? ${m} && !(builtins.elem "control-plane" cfg.nodes.${m}.roles)) members);
}
