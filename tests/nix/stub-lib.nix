# A minimal stand-in for nixpkgs' `lib`, enough to evaluate the `options` of
# the modules in modules/ without nixpkgs (Debian's nix-instantiate alone).
# Types carry the same `name` as in nixpkgs' lib/types.nix, so that
# option-types.nix can describe each option in nixpkgs' terms.
let
  b = builtins;

  mkType =
    name: extra:
    {
      _type = "option-type";
      inherit name;
    }
    // extra;

  types = rec {
    bool = mkType "bool" { };
    str = mkType "str" { };
    nonEmptyStr = mkType "nonEmptyStr" { };
    singleLineStr = mkType "singleLineStr" { };
    lines = mkType "lines" { };
    int = mkType "int" { };
    float = mkType "float" { };
    path = mkType "path" { };
    package = mkType "package" { };
    attrs = mkType "attrs" { };
    anything = mkType "anything" { };
    raw = mkType "raw" { };
    ints = {
      positive = mkType "positiveInt" { };
      unsigned = mkType "unsignedInt" { };
      u8 = mkType "unsignedInt8" { };
      u16 = mkType "unsignedInt16" { };
      u32 = mkType "unsignedInt32" { };
      between = lowest: highest: mkType "intBetween" { bounds = [ lowest highest ]; };
    };
    # nixpkgs: port = ints.u16
    port = ints.u16;
    listOf = elemType: mkType "listOf" { inherit elemType; };
    attrsOf = elemType: mkType "attrsOf" { inherit elemType; };
    lazyAttrsOf = elemType: mkType "lazyAttrsOf" { inherit elemType; };
    nullOr = elemType: mkType "nullOr" { inherit elemType; };
    uniq = elemType: mkType "uniq" { inherit elemType; };
    either = left: right: mkType "either" { inherit left right; };
    oneOf = members: mkType "oneOf" { inherit members; };
    enum = values: mkType "enum" { inherit values; };
    strMatching = pattern: mkType "strMatching" { inherit pattern; };
    separatedString = sep: mkType "separatedString" { inherit sep; };
    submodule = module: mkType "submodule" { modules = [ module ]; };
    submoduleWith = { modules, ... }: mkType "submodule" { inherit modules; };
  };

  mkOption =
    attrs:
    {
      _type = "option";
    }
    // attrs;

  # Same signatures as nixpkgs (lib/options.nix); defaults are never forced here.
  mkEnableOption =
    name:
    mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = "Whether to enable ${name}.";
    };

  mkPackageOption =
    pkgs: name:
    {
      nullable ? false,
      default ? name,
      example ? null,
      extraDescription ? "",
      pkgsText ? "pkgs",
    }:
    let
      path = if b.isList default then default else [ default ];
      text = b.concatStringsSep "." path;
    in
    mkOption {
      type = if nullable then types.nullOr types.package else types.package;
      default = b.foldl' (set: attr: set.${attr}) pkgs path;
      defaultText = literalExpression "${pkgsText}.${text}";
      description = "The ${text} package to use." + (if extraDescription == "" then "" else " " + extraDescription);
    };

  literalExpression = text: {
    _type = "literalExpression";
    inherit text;
  };
  literalMD = text: {
    _type = "literalMD";
    inherit text;
  };

  mkOverride = priority: content: {
    _type = "override";
    inherit priority content;
  };

  hasPrefix = pref: str: b.substring 0 (b.stringLength pref) str == pref;
  hasSuffix =
    suf: str:
    let
      ls = b.stringLength str;
      lf = b.stringLength suf;
    in
    lf <= ls && b.substring (ls - lf) lf str == suf;
  hasInfix =
    infix: str:
    let
      n = b.stringLength infix;
    in
    n <= b.stringLength str && b.any (i: b.substring i n str == infix) (b.genList (i: i) (b.stringLength str - n + 1));
  nameValuePair = name: value: { inherit name value; };
  mapAttrsToList = f: set: map (n: f n set.${n}) (b.attrNames set);
  # As nixpkgs (lib/strings.nix): a word of only safe characters stays as it
  # is; anything else is single-quoted, a quote inside written as '\''.
  escapeShellArg =
    arg:
    let
      s = toString arg;
    in
    if b.match "[[:alnum:],._+:@%/-]+" s == null then "'" + b.replaceStrings [ "'" ] [ "'\\''" ] s + "'" else s;
in
{
  inherit
    types
    mkOption
    mkEnableOption
    mkPackageOption
    literalExpression
    literalMD
    mkOverride
    hasPrefix
    hasSuffix
    hasInfix
    nameValuePair
    mapAttrsToList
    escapeShellArg
    ;

  mkIf = condition: content: {
    _type = "if";
    inherit condition content;
  };
  mkMerge = contents: {
    _type = "merge";
    inherit contents;
  };
  mkDefault = mkOverride 1000;
  mkForce = mkOverride 50;
  mkVMOverride = mkOverride 10;
  mkOrder = priority: content: {
    _type = "order";
    inherit priority content;
  };
  mkBefore = content: {
    _type = "order";
    priority = 500;
    inherit content;
  };
  mkAfter = content: {
    _type = "order";
    priority = 1500;
    inherit content;
  };

  optional = cond: x: if cond then [ x ] else [ ];
  optionals = cond: xs: if cond then xs else [ ];
  optionalString = cond: s: if cond then s else "";
  boolToString = v: if v then "true" else "false";
  optionalAttrs = cond: set: if cond then set else { };
  concatStringsSep = b.concatStringsSep;
  concatMapStringsSep = sep: f: xs: b.concatStringsSep sep (map f xs);
  concatMap = f: xs: b.concatLists (map f xs);
  concatLists = b.concatLists;
  mapAttrs = b.mapAttrs;
  mapAttrs' = f: set: b.listToAttrs (mapAttrsToList f set);
  filterAttrs =
    pred: set:
    b.listToAttrs (map (n: nameValuePair n set.${n}) (b.filter (n: pred n set.${n}) (b.attrNames set)));
  attrValues = b.attrValues;
  attrNames = b.attrNames;
  listToAttrs = b.listToAttrs;
  genAttrs = names: f: b.listToAttrs (map (n: nameValuePair n (f n)) names);
  elem = b.elem;
  all = b.all;
  any = b.any;
  filter = b.filter;
  length = b.length;
  head = b.head;
  last = xs: b.elemAt xs (b.length xs - 1);
  count = pred: xs: b.length (b.filter pred xs);
  unique = b.foldl' (acc: x: if b.elem x acc then acc else acc ++ [ x ]) [ ];
  toInt = s: b.fromJSON s;
  stringLength = b.stringLength;
  escapeShellArgs = args: b.concatStringsSep " " (map escapeShellArg args);
  # As nixpkgs: the five characters XML gives a meaning, as entities.
  escapeXML = b.replaceStrings [ "\"" "'" "<" ">" "&" ] [ "&quot;" "&apos;" "&lt;" "&gt;" "&amp;" ];
  getExe = pkg: "${pkg}/bin/${pkg.meta.mainProgram or pkg.pname or pkg.name}";
  isList = b.isList;
  isAttrs = b.isAttrs;
  isFunction = b.isFunction;
}
