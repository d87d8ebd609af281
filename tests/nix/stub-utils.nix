# A stand-in for the NixOS module argument `utils` (nixpkgs'
# nixos/lib/utils.nix), for mini-eval.nix: the functions the modules call,
# behaving as nixpkgs' do.
let
  b = builtins;
  isDerivation = v: b.isAttrs v && (v.type or null) == "derivation";
in
rec {
  # One argument of an Exec*= line. systemd removes double quotes and reads
  # C escapes inside them (a JSON string uses a subset), expands `%`
  # specifiers (`%%` is one `%`) and `$VAR` (`$$` is one `$`); a quoted `;`
  # separates nothing. Strings, paths, numbers and derivations only.
  escapeSystemdExecArg =
    arg:
    let
      s =
        if b.isPath arg then
          "${arg}"
        else if b.isString arg then
          arg
        else if b.isInt arg || b.isFloat arg || isDerivation arg then
          toString arg
        else
          throw "escapeSystemdExecArg only allows strings, paths, numbers and derivations";
    in
    b.replaceStrings [ "%" "$" ] [ "%%" "$$" ] (b.toJSON s);

  # A whole Exec*= command line from a list of arguments.
  escapeSystemdExecArgs = args: b.concatStringsSep " " (map escapeSystemdExecArg args);
}
