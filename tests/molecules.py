"""Known molecules and their Bemis-Murcko scaffolds, for the scaffold tests."""

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
NICOTINE = "CN1CCC[C@H]1c1cccnc1"
CAFFEINE = "Cn1c(=O)c2c(ncn2C)n(C)c1=O"
OCTANOIC_ACID = "CCCCCCCC(=O)O"
# Their Bemis-Murcko frameworks: side chains gone, ring atoms, linkers and ring carbonyls kept.
BENZENE = "c1ccccc1"
NICOTINE_SCAFFOLD = "c1cncc(C2CCCN2)c1"
XANTHINE_SCAFFOLD = "O=c1[nH]c(=O)c2[nH]cnc2[nH]1"
