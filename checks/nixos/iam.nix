# The example cluster with uc-iam on its node (the example hosts run none):
# checks/schema/run evaluates checks/nixos/eval.nix with it.
{cluster.iam.nodes = ["node01"];}
