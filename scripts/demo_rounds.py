"""Reading a demo run's stored rounds: shared by the scripts that re-examine recaptions.

DEMO_OUT is a folder as `vila2 demo --out` writes it (shapes/ and run/)."""
import glob, json, sys, tarfile


def round_records(out, rnd):
    """Yields (key, provenance) for every sample of round `rnd`'s shards, in shard order."""
    shards = sorted(glob.glob(f"{out}/run/round-{rnd}/data/*.tar"))
    if not shards:
        sys.exit(f"no shards in {out}/run/round-{rnd}/data")
    for path in shards:
        with tarfile.open(path) as tar:
            for m in tar.getmembers():
                if m.name.endswith(".json"):
                    yield m.name[:-5], json.load(tar.extractfile(m))


def rounds(out):
    """The rounds with stored shards under DEMO_OUT/run (`round-K/data`), in order."""
    return sorted(int(p.split("/")[-2][len("round-"):])
                  for p in glob.glob(f"{out}/run/round-*/data"))
