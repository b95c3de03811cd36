from service.worker import pick_original, pick_proxy


def proxy(name, height, fmt="MP4", codec="h264", status="CLOSED"):
    return {
        "id": name,
        "format": fmt,
        "codec": codec,
        "status": status,
        "resolution": {"width": height * 16 // 9, "height": height},
    }


def test_prefers_mp4_h264_then_largest_within_the_cap():
    proxies = [
        proxy("webm1080", 1080, "WEBM", "vp9"),
        proxy("mp4-540", 540),
        proxy("mp4-720", 720),
        proxy("mp4-2160", 2160),
    ]
    assert pick_proxy(proxies, 1080)["id"] == "mp4-720"


def test_takes_the_smallest_above_the_cap_when_nothing_fits():
    assert pick_proxy([proxy("2160", 2160), proxy("1440", 1440)], 1080)["id"] == "1440"


def test_unfinished_proxies_are_not_usable():
    assert (
        pick_proxy([proxy("p", 720, status="OPEN"), proxy("q", 720, status="FAILED")], 1080) is None
    )


def test_original_excludes_subtitle_files_and_unfinished_files():
    files = [
        {"id": "srt", "status": "CLOSED", "format_id": "subs", "size": 10_000_000},
        {"id": "open", "status": "OPEN", "format_id": "orig", "size": 9_000_000},
        {"id": "mov", "status": "CLOSED", "format_id": "orig", "size": 5_000_000},
    ]
    assert pick_original(files, {"subs"})["id"] == "mov"
    assert pick_original(files[:2], {"subs"}) is None
