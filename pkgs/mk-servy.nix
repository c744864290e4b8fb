# mkServy { site = ./public; }: servy with your site embedded.
#
# `site` is a directory (a path in your flake) or a derivation whose output is one, e.g.
# a Hugo build. Only the final build differs from the demo servy: the dependencies are
# the same derivation, built once.
{servy}: {site}: servy.override {inherit site;}
