# Every option declared in modules/, as a flat attribute set from option path
# to a type description in nixpkgs' type-name terms, e.g.
#   "services.ghostbridge.network.bridges.<name>.dhcp" = "bool";
#   "services.ghostbridge.ovs.settings.bridges" = "listOf (open submodule of JSON value)";
#   "services.ghostbridge.snapshotter.configFile" = "path (read-only)";
# ("open submodule of X": a submodule with freeformType X, as nixpkgs describes it;
# "<name>" is a key of an attrsOf, "*" an element of a listOf.)
# Runs without nixpkgs:
#   nix-instantiate --eval --strict --json tests/nix/option-types.nix
# It calls each module with a stub `lib` (stub-lib.nix), an empty `config` and
# a `pkgs` holding only `formats` (the stand-in of stub-pkgs.nix, for the
# settings' freeform type), and touches only `options`: a module whose options
# depend on `config` or on packages fails here. It also fails when a module
# file is not imported by modules/default.nix, when two modules declare the
# same option, or when an option has no description.
let
  b = builtins;
  lib = import ./stub-lib.nix;
  modulesDir = ../../modules;

  moduleFiles = b.filter (n: n != "default.nix" && b.match ".*\\.nix" n != null && (b.readDir modulesDir).${n} == "regular") (
    b.attrNames (b.readDir modulesDir)
  );
  imported = map (p: baseNameOf (toString p)) (import (modulesDir + "/default.nix")).imports;
  notImported = b.filter (n: !(b.elem n imported)) moduleFiles;

  args = name: {
    inherit lib name;
    config = { };
    options = { };
    pkgs = { inherit (import ./stub-pkgs.nix) formats; };
    utils = { };
    modulesPath = "/nonexistent";
  };
  callModule = name: m: if b.isFunction m then m (args name) else m;

  paren = s: if b.match ".* .*" s != null then "(${s})" else s;

  describe =
    t:
    if !(b.isAttrs t && (t._type or null) == "option-type") then
      throw "not an option type: ${b.typeOf t}"
    # A type that names itself, as nixpkgs' pkgs.formats types do ("JSON value").
    else if t ? description then
      t.description
    else if t.name == "submodule" then
      let
        freeform = b.filter (m: m ? freeformType) (map (callModule "<name>") t.modules);
      in
      if freeform == [ ] then "submodule" else "open submodule of ${describe (b.head freeform).freeformType}"
    else if b.elem t.name [
      "listOf"
      "attrsOf"
      "lazyAttrsOf"
      "nullOr"
      "uniq"
    ] then
      "${t.name} ${paren (describe t.elemType)}"
    else if t.name == "either" then
      "either ${paren (describe t.left)} ${paren (describe t.right)}"
    else if t.name == "oneOf" then
      "oneOf [${b.concatStringsSep ", " (map describe t.members)}]"
    else if t.name == "enum" then
      "enum ${b.toJSON t.values}"
    else if t.name == "strMatching" then
      "strMatching ${b.toJSON t.pattern}"
    else if t.name == "intBetween" then
      "intBetween ${toString (b.elemAt t.bounds 0)} ${toString (b.elemAt t.bounds 1)}"
    else
      t.name;

  # Options found inside a type: submodules, also behind attrsOf/listOf/nullOr.
  nested =
    path: t:
    if t.name == "submodule" then
      b.foldl' (acc: m: merge acc (walk path ((callModule "<name>" m).options or { }))) { } t.modules
    else if b.elem t.name [
      "attrsOf"
      "lazyAttrsOf"
    ] then
      nested "${path}.<name>" t.elemType
    else if t.name == "listOf" then
      nested "${path}.*" t.elemType
    else if b.elem t.name [
      "nullOr"
      "uniq"
    ] then
      nested path t.elemType
    else if t.name == "either" then
      merge (nested path t.left) (nested path t.right)
    else
      { };

  merge =
    a: c:
    let
      both = b.filter (n: a ? ${n}) (b.attrNames c);
    in
    if both != [ ] then throw "option declared twice: ${b.concatStringsSep ", " both}" else a // c;

  walk =
    path: v:
    if (v._type or null) == "option" then
      if !(v ? type) then
        throw "option ${path} has no type"
      else if !(v ? description) then
        throw "option ${path} has no description"
      else
        merge {
          ${path} = describe v.type + (if v.readOnly or false then " (read-only)" else "");
        } (nested path v.type)
    else if b.isAttrs v then
      b.foldl' (acc: n: merge acc (walk (if path == "" then n else "${path}.${n}") v.${n})) { } (b.attrNames v)
    else
      throw "${path} is neither an option nor a set of options";

  perFile = map (f: walk "" ((callModule "<name>" (import (modulesDir + "/${f}"))).options or { })) moduleFiles;
in
if notImported != [ ] then
  throw "modules/default.nix does not import: ${b.concatStringsSep ", " notImported}"
else
  b.foldl' merge { } perFile
