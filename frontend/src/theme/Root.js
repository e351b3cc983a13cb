import ChatWidget from '@site/src/components/ChatWidget';

// Swizzled Root: wraps every page, so the chat widget is mounted site-wide.
export default function Root({children}) {
  return (
    <>
      {children}
      <ChatWidget />
    </>
  );
}
