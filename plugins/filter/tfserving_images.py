# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Image filters of the tfserving role: the images the plan runs, their repositories, and the
digests to pin them to (tfserving_image_refs, tfserving_image_repository, tfserving_repo_digest,
tfserving_pin_map, tfserving_image_map, tfserving_missing_images).
"""

from __future__ import annotations


def image_refs(plan_):
    """Distinct images the present instances run, in a stable order."""
    return sorted({inst["container"]["image"] for inst in plan_ or [] if inst.get("state") == "present"})


def image_repository(ref):
    """registry:port/name:tag -> registry:port/name (a digest reference keeps everything before '@')."""
    ref = str(ref)
    if "@" in ref:
        return ref.split("@", 1)[0]
    head, _unused, last = ref.rpartition("/")
    if ":" in last:
        last = last.split(":", 1)[0]
    return f"{head}/{last}" if head else last


def _with_tag(ref):
    ref = str(ref)
    if "@" in ref:
        return ref
    last = ref.rsplit("/", 1)[-1]
    return ref if ":" in last else ref + ":latest"


def pin_map(refs, images):
    """{ref: repo@sha256:...} for each tag reference found among docker_image_info's images.

    References that are digests already, or whose image has no registry digest (a local build or
    an archive load), are left out: they are used as they are.
    """
    out = {}
    for ref in refs or []:
        if "@" in str(ref):
            continue
        for image in images or []:
            if _with_tag(ref) in [_with_tag(t) for t in (image or {}).get("RepoTags") or []]:
                digest = repo_digest({"images": [image]}, ref)
                if digest:
                    out[ref] = digest
                break
    return out


def missing_images(refs, images):
    """References among ``refs`` that no image of docker_image_info's list carries (tag or digest)."""
    known = set()
    for image in images or []:
        known |= {_with_tag(t) for t in (image or {}).get("RepoTags") or []}
        known |= set((image or {}).get("RepoDigests") or [])
    return [ref for ref in refs or [] if _with_tag(ref) not in known]


def image_map(refs, pins=None):
    """{ref: the reference to run}: the fleet's pinned digest when there is one, else ref itself."""
    pins = pins or {}
    return {ref: pins.get(ref) or ref for ref in refs or []}


def repo_digest(image_info, ref):
    """The repo@sha256:... of ``ref`` from docker_image_info's image, or '' when it has none (local builds)."""
    images = image_info.get("images", []) if isinstance(image_info, dict) and "images" in image_info else [image_info]
    wanted = image_repository(ref)
    for image in images:
        for digest in (image or {}).get("RepoDigests") or []:
            if image_repository(digest) == wanted:
                return digest
    return ""


class FilterModule:
    """Image filters of the tfserving role: the images the plan runs, their repositories, and the."""

    def filters(self):
        return {
            "tfserving_image_refs": image_refs,
            "tfserving_image_repository": image_repository,
            "tfserving_repo_digest": repo_digest,
            "tfserving_pin_map": pin_map,
            "tfserving_image_map": image_map,
            "tfserving_missing_images": missing_images,
        }
