# shellcheck shell=bash
# bench/lib.sh - helpers that bench/compare-qemu.sh and bench/boot.sh share.

# gnuplot_term FONT_SIZE: the gnuplot terminal to draw PNGs with: pngcairo
# when this gnuplot has it, else png.
gnuplot_term()
{
	if gnuplot -e 'set terminal' 2>/dev/null | grep -qw pngcairo; then
		echo "pngcairo font ',$1'"
	else
		echo png
	fi
}
