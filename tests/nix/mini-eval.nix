# A small evaluator of the modules in modules/, without nixpkgs. It computes
# every option's value as the module system does, from the test's
# definitions, the modules' own `config` (which may set GhostBridge options,
# e.g. a default `settings.url`) and the option defaults, lazily:
#  - definitions of an option are found by walking each `config` along the
#    option's path; mkIf conditions met on the way are kept and evaluated only
#    then (nixpkgs' pushDownProperties), so finding one option's definitions
#    never forces another's;
#  - the definitions of highest priority win (mkDefault 1000, plain 100,
#    mkForce 50; an option's default 1500); lists concatenate, attribute sets
#    merge key by key, each key again by priority;
#  - submodules (also in attrsOf and listOf), freeformType (keys without an
#    option are kept), readOnly (no definition beside the default).
# The few nixpkgs options the modules read are stand-ins below. Then it
# resolves each module's `config` against the result, so that a test can
# read the assertions and the daemons' units.
# It is not the module system: types are not checked beyond rejecting
# unknown option names, and mkOrder is ignored.
{ pkgs }:
let
  b = builtins;
  lib = import ./stub-lib.nix;
  inherit (lib) mkOption mkDefault types;
  modulesDir = ../../modules;
  files = map (p: baseNameOf (toString p)) (import (modulesDir + "/default.nix")).imports;

  isOption = v: b.isAttrs v && (v._type or null) == "option";
  isPlain = v: b.isAttrs v && !(v ? outPath) && !(v ? _type);
  showPath = b.concatStringsSep ".";

  # Deep merge for `result`: attribute sets recursively, lists concatenated.
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

  # mkIf / mkMerge / mkOverride / mkOrder resolved, lazily (for `result`).
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

  # The definitions at `path` inside one `config` value: [ { value; prio; conds; } ],
  # conditions kept unevaluated.
  find =
    path: v: prio: conds:
    let
      t = if b.isAttrs v then v._type or null else null;
    in
    if t == "if" then
      find path v.content prio (conds ++ [ v.condition ])
    else if t == "merge" then
      b.concatMap (x: find path x prio conds) v.contents
    else if t == "override" then
      find path v.content v.priority conds
    else if t == "order" then
      find path v.content prio conds
    else if path == [ ] then
      [ { inherit prio conds; value = v; } ]
    else if isPlain v && v ? ${b.head path} then
      find (b.tail path) v.${b.head path} prio conds
    else
      [ ];

  active = b.filter (d: b.all (c: c) d.conds);
  # The definitions of one key inside the given (active, winning) definitions.
  descend = key: defs: b.concatMap (d: find [ key ] d.value 100 d.conds) defs;
  winners =
    defs:
    let
      top = b.foldl' (m: d: if d.prio < m then d.prio else m) 10000 defs;
    in
    b.filter (d: d.prio == top) defs;

  # The value of type `t` at `path` from its definitions (at least one is active).
  valueOf =
    call: path: t: defs:
    let
      best = winners (active defs);
      values = map (d: d.value) best;
      keysOf = lib.unique (b.concatMap (v: if isPlain v then b.attrNames v else [ ]) values);
      # Keys with at least one active definition, each evaluated as `typeOf key`.
      attrsFrom =
        keys: typeOf:
        b.listToAttrs (
          b.concatMap (
            k:
            let
              kd = active (descend k best);
            in
            if kd == [ ] then [ ] else [ (lib.nameValuePair k (valueOf call (path ++ [ k ]) (typeOf k) kd)) ]
          ) keys
        );
    in
    if best == [ ] then
      throw "option ${showPath path} is used but not defined"
    else if t.name == "submodule" then
      let
        modules = map (call (lib.last path)) t.modules;
        options = b.foldl' (acc: m: acc // (m.options or { })) { } modules;
        freeform = b.foldl' (acc: m: m.freeformType or acc) null modules;
        unknown = b.filter (k: !(options ? ${k})) keysOf;
      in
      if freeform == null && unknown != [ ] then
        throw "no option ${showPath (path ++ [ (b.head unknown) ])}"
      else
        lib.optionalAttrs (freeform != null) (attrsFrom unknown (_: freeform))
        // b.mapAttrs (k: o: optionValue call (path ++ [ k ]) o (descend k best)) options
    else if
      b.elem t.name [
        "attrsOf"
        "lazyAttrsOf"
      ]
    then
      attrsFrom keysOf (_: t.elemType)
    else if t.name == "listOf" then
      let
        items = b.concatLists values;
      in
      if t.elemType.name == "submodule" then
        b.genList (
          i:
          valueOf call (path ++ [ "*" ]) t.elemType [
            {
              value = b.elemAt items i;
              prio = 100;
              conds = [ ];
            }
          ]
        ) (b.length items)
      else
        items
    # Any other type: attribute sets (a freeform JSON value, say) merge key by
    # key; otherwise the winning definitions must agree.
    else if b.all isPlain values && t.name != "attrs" then
      attrsFrom keysOf (_: t)
    else if b.all b.isList values then
      b.concatLists values
    else if b.all (v: v == b.head values) values then
      resolve (b.head values)
    else
      throw "conflicting definitions of ${showPath path}: ${b.toJSON values}";

  optionValue =
    call: path: o: defs:
    let
      all = active defs ++ lib.optional (o ? default) {
        value = o.default;
        prio = 1500;
        conds = [ ];
      };
    in
    if (o.readOnly or false) && b.length all > 1 then
      throw "option ${showPath path} is read-only, but it is set"
    else if all == [ ] then
      throw "option ${showPath path} is used but not defined"
    else
      valueOf call path o.type all;

  # The nixpkgs options the modules read, with nixpkgs' defaults.
  standIns = {
    options = {
      services.grafana.dataDir = mkOption {
        type = types.str;
        default = "/var/lib/grafana";
      };
      virtualisation.vswitch.package = mkOption {
        type = types.package;
        default = pkgs.openvswitch;
      };
      # nixpkgs' services/networking/ssh/sshd.nix (ssh.nix sets enable = mkDefault true).
      services.openssh.enable = mkOption {
        type = types.bool;
        default = false;
      };
      services.openssh.ports = mkOption {
        type = types.listOf types.port;
        default = [ 22 ];
      };
      # nixpkgs' services/networking/firewall.nix (base.nix enables it).
      networking.firewall.enable = mkOption {
        type = types.bool;
        default = true;
      };
      networking.firewall.allowedTCPPorts = mkOption {
        type = types.listOf types.port;
        default = [ ];
      };
      # nixpkgs: (pkgs.formats.yaml { }).type; it merges as the JSON type does.
      services.qdrant.settings = mkOption {
        type = (pkgs.formats.json { }).type;
        default = { };
      };
    };
    # nixpkgs' services/search/qdrant.nix sets these (under `mkIf cfg.enable`; here always).
    config.services.qdrant.settings = {
      service = {
        host = mkDefault "127.0.0.1";
        http_port = mkDefault 6333;
        grpc_port = mkDefault 6334;
      };
      storage = {
        storage_path = mkDefault "/var/lib/qdrant/storage";
        snapshots_path = mkDefault "/var/lib/qdrant/snapshots";
      };
    };
  };

  # The test's definitions must name options (down to the first option on the way).
  checkKnown =
    tree: path: v:
    if isOption tree || !(isPlain v) then
      true
    else
      b.all (
        n:
        if tree ? ${n} then
          checkKnown tree.${n} (path ++ [ n ]) v.${n}
        else
          throw "no option ${showPath (path ++ [ n ])}"
      ) (b.attrNames v);

  eval =
    definitions:
    let
      testConfigs = if b.isList definitions then definitions else [ definitions ];
      args = name: {
        inherit lib pkgs name;
        config = final;
        options = { };
        utils = import ./stub-utils.nix;
        modulesPath = "/nonexistent";
      };
      call = name: m: if b.isFunction m then m (args name) else m;
      modules = map (f: call "<name>" (import (modulesDir + "/${f}"))) files;
      optionTree = b.foldl' merge standIns.options (map (m: m.options or { }) modules);
      configs = testConfigs ++ [ standIns.config ] ++ map (m: m.config or { }) modules;

      # Every option's value, from every config: lazily, option by option.
      walk =
        path: tree:
        if isOption tree then
          optionValue call path tree (b.concatMap (c: find path c 100 [ ]) configs)
        else
          b.mapAttrs (n: walk (path ++ [ n ])) tree;
      final = walk [ ] optionTree;
      resolved = map (m: resolve (m.config or { })) modules;
    in
    assert b.all (checkKnown optionTree [ ]) testConfigs;
    {
      config = final;
      # The merged `config` of every module (lazily: only what a test reads is computed).
      result = b.foldl' merge { } resolved;
      failedAssertions = map (a: a.message) (
        b.filter (a: !a.assertion) (b.concatLists (map (c: c.assertions or [ ]) resolved))
      );
    };
in
eval
