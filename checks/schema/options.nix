# The `cluster.*` option tree as plain data, for the generated option
# reference (docs/options.md) and the check that every option is documented.
{nixpkgsLib}: let
  lib = import nixpkgsLib;
  ultracloud = import ../../lib {inherit lib;};
  inherit (ultracloud.evalCluster {modules = [];}) options;
  text = v:
    if v == null
    then null
    else if builtins.isAttrs v && v ? text
    then v.text
    else builtins.toJSON v;
in
  map (o: {
    inherit (o) name type readOnly;
    description = o.description or null;
    default = text (o.default or null);
    example = text (o.example or null);
  }) (builtins.filter (o: o.visible && !o.internal && lib.hasPrefix "cluster." o.name)
    (lib.optionAttrSetToDocList options))
