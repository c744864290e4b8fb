# A generated site with the blog's shape (tests/sitegen): site/, redirects.txt,
# paths.txt (one crawl pass) and aliases.txt. Same seed and scale, same bytes.
{
  runCommand,
  python3,
  scale ? 0.05,
  seed ? 2024,
}:
runCommand "servy-test-site-${toString scale}" {nativeBuildInputs = [python3];} ''
  python3 ${../tests/sitegen/sitegen.py} --out $out --scale ${toString scale} --seed ${toString seed}
''
