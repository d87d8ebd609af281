# A small evaluator of the modules in modules/, without nixpkgs: it fills the
# `services.ghostbridge` options from their defaults and the given
# definitions (defaults may depend on the result, as in the module system),
# then resolves mkIf/mkMerge/mkDefault/... in each module's `config`, lazily,
# so that a test can read the assertions and the daemons' units.
# It is not the module system: no priorities, no type checking beyond
# rejecting unknown option names. It exists to test what the modules compute.
{ pkgs }:
let
  b = builtins;
  lib = import ./stub-lib.nix;
  modulesDir = ../../modules;
  files = map (p: baseNameOf (toString p)) (import (modulesDir + "/default.nix")).imports;

  isOption = v: b.isAttrs v && (v._type or null) == "option";

  # Deep merge: attribute sets recursively, lists concatenated.
  merge =
    a: c:
    a
    // b.mapAttrs (
      n: v:
      if !(a ? ${n}) then
        v
      else if b.isAttrs v && b.isAttrs a.${n} && !(isOption v) then
        merge a.${n} v
      else if b.isList v && b.isList a.${n} then
        a.${n} ++ v
      else if v == a.${n} then
        v
      else
        throw "conflicting definitions of ${n}"
    ) c;

  # mkIf / mkMerge / mkOverride / mkOrder resolved, lazily.
  resolve =
    v:
    let
      t = if b.isAttrs v then v._type or null else null;
    in
    if t == "if" then
      (if v.condition then resolve v.content else { })
    else if t == "merge" then
      b.foldl' (acc: x: merge acc (resolve x)) { } v.contents
    else if t == "override" || t == "order" then
      resolve v.content
    else if b.isAttrs v && t == null && !(v ? outPath) then
      b.mapAttrs (_: resolve) v
    else
      v;

  eval =
    definitions:
    let
      args = name: {
        inherit lib pkgs name;
        config = final;
        options = { };
        utils = { };
        modulesPath = "/nonexistent";
      };
      call = name: m: if b.isFunction m then m (args name) else m;
      modules = map (f: call "<name>" (import (modulesDir + "/${f}"))) files;
      options = b.foldl' (acc: m: merge acc (m.options or { })) { } modules;

      fill =
        path: opts: defs:
        let
          unknown = b.filter (n: !(opts ? ${n})) (b.attrNames defs);
        in
        if unknown != [ ] then
          throw "no option ${path}.${b.head unknown}"
        else
          b.mapAttrs (
            n: o:
            let
              p = "${path}.${n}";
            in
            if isOption o then
              let
                value = defs.${n} or o.default or (throw "option ${p} has no value and no default");
              in
              if o.type.name == "attrsOf" && o.type.elemType.name == "submodule" then
                b.mapAttrs (
                  k: x: fill "${p}.${k}" (call k (b.head o.type.elemType.modules)).options x
                ) value
              else
                value
            else
              fill p o (defs.${n} or { })
          ) opts;

      final = {
        services.ghostbridge = fill "services.ghostbridge" options.services.ghostbridge (
          definitions.services.ghostbridge or { }
        );
        services.grafana.dataDir = "/var/lib/grafana";
        virtualisation.vswitch.package = "/nix/store/openvswitch";
      };
      configs = map (m: resolve (m.config or { })) modules;
    in
    {
      config = final;
      # The merged `config` of every module (lazily: only what a test reads is computed).
      result = b.foldl' merge { } configs;
      failedAssertions = map (a: a.message) (
        b.filter (a: !a.assertion) (b.concatLists (map (c: c.assertions or [ ]) configs))
      );
    };
in
eval
