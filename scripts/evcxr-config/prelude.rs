// evcxr runs this file when a kernel of the project's kernelspec starts (kernel.json sets
// EVCXR_CONFIG_DIR to this directory): its items are then part of every cell.
//
// evcxr shows a cell's last expression by compiling `(expr).evcxr_display();`. For a plain
// value (`b`, `acc`, a `Vec`) that method does not exist: the compilation fails and evcxr
// compiles the cell a second time, printing the value with `{:?}`. With this trait every
// `Debug` value has the method, so the first compilation succeeds and prints the same text.
// Types with an `evcxr_display` of their own (a gradviz `Figure` shows as an image) keep it,
// as inherent methods come first; a `()` (a cell ending in a loop) shows nothing.
//
// It lives here and not in gradviz: a library trait that provides `evcxr_display` makes
// rustc suggest importing it wherever it is not in scope, and evcxr then reports that
// suggestion instead of falling back to `{:?}` (environment.md, "Notebook cells").
trait EvcxrShowDebug {
    fn evcxr_display(&self);
}

impl<T: std::fmt::Debug + ?Sized> EvcxrShowDebug for T {
    fn evcxr_display(&self) {
        if std::any::type_name::<T>() != "()" {
            println!("EVCXR_BEGIN_CONTENT text/plain\n{self:?}\nEVCXR_END_CONTENT");
        }
    }
}

// evcxr compiles cells without support for `?` until a compilation fails because a cell used
// it; then it recompiles that cell with it and keeps it. Using `?` here switches it on while
// the kernel starts, so the user's first cell with `?` compiles once, not twice.
{
    Ok::<(), std::fmt::Error>(())?;
}
