# How a value leaves Nix: one function per destination language, each writing
# the value so that the destination reads back exactly that value. Where the
# destination has no way to write a character, the function refuses the
# value (an evaluation error naming the destination) rather than let it change
# the meaning of the line. Not a NixOS module: modules/default.nix does not
# import lib/.
#   escape = import ./lib/escape.nix { inherit lib; };
# The other destinations use nixpkgs' own functions:
#   Exec*= lines (ExecStart=, ExecStartPre=, and nixpkgs options that end up in
#     them verbatim, e.g. a Prometheus exporter's extraFlags): utils.escapeSystemdExecArg(s);
#   shell scripts: lib.escapeShellArg(s).
{ lib }:
let
  b = builtins;

  # `s`, if the whole of it matches the regular expression `re`; else an error.
  refuseUnless =
    re: destination: why: s:
    if b.match re s != null then s else throw "${destination} cannot hold ${why}: ${b.toJSON s}";

  noLineBreak = destination: refuseUnless "[^\n\r]*" destination "a line break (CR or LF ends the line)";

  # XML 1.0 has no way to write these (not even as &#N;).
  xmlChars = b.fromJSON ''"[^\u0001-\u0008\u000b\u000c\u000e-\u001f]*"'';
in
{
  # A value its reader takes verbatim up to the end of the line, with no
  # quoting: systemd-networkd settings (Name=, Address=, Gateway=, DNS=),
  # sysctl.d, modules-load.d, the boot loader entry's kernel command line.
  # Only a line break would change the file's structure; what else the value
  # may hold is the destination's own syntax (checked by `ghostgen check`).
  #   escape.line "sysctl.d" value
  line = noLineBreak;

  # One path of a systemd path list (ReadWritePaths=, RequiresMountsFor=): the
  # list splits on white space and removes quotes, a backslash takes the next
  # character literally (no C escapes), and `%` starts a specifier. A double-
  # quoted word keeps everything but line breaks.
  unitPath =
    s:
    let
      checked = noLineBreak "a systemd path list (ReadWritePaths=, RequiresMountsFor=)" s;
    in
    "\"" + b.replaceStrings [ "\\" "\"" "%" ] [ "\\\\" "\\\"" "%%" ] checked + "\"";

  # The source path of LoadCredential=ID:PATH: systemd takes it verbatim to the
  # end of the line, with `%` specifiers and no quoting. The line's trailing
  # white space is stripped and a trailing backslash continues the line, so
  # neither can end the path.
  unitCredentialPath =
    s:
    b.replaceStrings [ "%" ] [ "%%" ] (
      refuseUnless "[^\n\r]*[^\n\r \t\\]" "LoadCredential="
        "a line break, nor end in white space or a backslash (systemd strips or joins them)"
        s
    );

  # The path field of a tmpfiles.d line: fields split on white space, quotes are
  # removed and C escapes read (a JSON string is a subset of those), `%` starts
  # a specifier. Every character can be written.
  tmpfilesPath = s: b.replaceStrings [ "%" ] [ "%%" ] (b.toJSON s);

  # XML text or attribute value (libvirt network definitions): markup escaped
  # (lib.escapeXML), and tab, LF and CR as character references, which the
  # parser would otherwise normalize (to a space in attributes, CR to LF in text).
  xml =
    s:
    b.replaceStrings [ "\t" "\n" "\r" ] [ "&#9;" "&#10;" "&#13;" ] (
      lib.escapeXML (refuseUnless xmlChars "XML 1.0" "control characters other than tab, LF and CR" s)
    );
}
