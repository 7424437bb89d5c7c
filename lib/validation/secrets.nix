# Secrets are paths on the target machine. A Nix path value would be copied
# into the world-readable store the moment it is used, so it is refused here,
# before anything interpolates it.
{
  lib,
  config,
  ucTypes,
  ...
}: let
  cfg = config.cluster;
  rule = path: value: {
    assertion = value == null || ucTypes.isSecretPath value;
    message =
      if builtins.isPath value
      then "${path} is the Nix path ${toString value}: a secret given as a Nix path is copied into the world-readable Nix store. Give the path of the file on the node as a string instead, e.g. \"/run/secrets/${baseNameOf (toString value)}\", and provision the file out of band (agenix, sops-nix, or by hand)."
      else "${path} = \"${toString value}\" is not an absolute path outside the Nix store; give the path of the secret file on the node, e.g. \"/run/secrets/name\".";
  };
in {
  assertions =
    lib.concatLists (lib.mapAttrsToList (s: svc:
      lib.mapAttrsToList (var: rule "cluster.services.${s}.secretFiles.${var}") svc.secretFiles)
    cfg.services)
    ++ lib.concatLists (lib.mapAttrsToList (l: listener: [
        (rule "cluster.lb.listeners.${l}.tls.certificateFile" listener.tls.certificateFile)
        (rule "cluster.lb.listeners.${l}.tls.keyFile" listener.tls.keyFile)
      ])
      cfg.lb.listeners)
    ++ [
      (rule "cluster.deployer.cache.signingKeyFile" cfg.deployer.cache.signingKeyFile)
      (rule "cluster.deployer.enrollmentTokenFile" cfg.deployer.enrollmentTokenFile)
    ];
}
