# expect: cluster.iam.bootstrapAdminSecretFile must be an absolute path on the node, as a string, outside the Nix store
{cluster.iam.bootstrapAdminSecretFile = ../base.nix;}
