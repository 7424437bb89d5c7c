# expect: cluster.deployer.cache.signingKeyFile = "/nix/store/00000000000000000000000000000000-key" is not an absolute path outside the Nix store
{cluster.deployer.cache.signingKeyFile = "/nix/store/00000000000000000000000000000000-key";}
