# k6test: the load scenarios of tests/k6 with their wrapper (run.sh), and k6 on its PATH.
#
#   k6test --url http://server:8080 --paths paths.txt --aliases redirects.txt --out DIR
#
# Exit status is k6's: 0 when every threshold held, 99 when one failed.
{
  lib,
  stdenvNoCC,
  makeWrapper,
  k6,
  coreutils,
  gnused,
}:
stdenvNoCC.mkDerivation {
  pname = "servy-k6test";
  version = "0.1.0";
  src = lib.fileset.toSource {
    root = ../tests/k6;
    fileset = ../tests/k6;
  };
  nativeBuildInputs = [makeWrapper];
  installPhase = ''
    runHook preInstall
    mkdir -p $out/share/servy-k6
    cp -r . $out/share/servy-k6/
    # run.sh finds the scenarios next to itself, so wrap it where it lies.
    makeWrapper $out/share/servy-k6/run.sh $out/bin/k6test \
      --prefix PATH : ${lib.makeBinPath [k6 coreutils gnused]}
    runHook postInstall
  '';
  meta = {
    description = "servy's k6 load scenarios (the blog's, and a browser-like one) with their runner";
    license = lib.licenses.mit;
    mainProgram = "k6test";
  };
}
