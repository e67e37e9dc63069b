"""Local Greengrass core emulator: runs packaged components on simulated devices, offline."""
