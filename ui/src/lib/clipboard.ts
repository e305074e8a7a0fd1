/**
 * Put text on the clipboard. The clipboard API needs a permission some webviews don't give: fall back to
 * copying a hidden selection. True when either worked.
 */
export async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const box = document.createElement("textarea");
    box.value = text;
    box.setAttribute("readonly", "");
    box.style.position = "fixed";
    box.style.opacity = "0";
    document.body.appendChild(box);
    box.select();
    let ok = false;
    try {
      ok = document.execCommand?.("copy") ?? false;
    } catch {
      ok = false;
    }
    box.remove();
    return ok;
  }
}
