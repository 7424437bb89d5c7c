# Rollout health checks must carry what their type needs.
{
  lib,
  config,
  ...
}: let
  checks = config.cluster.rollout.healthChecks;
  need = {
    exec = c: c.command != [];
    tcp = c: c.address != null && builtins.match ".+:[0-9]+" c.address != null;
    http = c: c.url != null && lib.hasPrefix "http://" c.url;
  };
  what = {
    exec = "a non-empty command";
    tcp = "an address host:port";
    http = "a url starting with http://";
  };
in {
  assertions =
    lib.imap0 (i: c: {
      assertion = need.${c.type} c;
      message = "cluster.rollout.healthChecks.${toString i} (\"${c.name}\", type ${c.type}) needs ${what.${c.type}}.";
    })
    checks;
}
