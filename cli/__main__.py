from geoseg.cli import main

main(prog_name="geoseg")
